"""`recharge bench`: cached vs uncached latency side by side in one run — latency trials
one request at a time in this process, load runs and operation mixes in N load processes."""
