"""`recharge bench`: cached vs uncached latency, measured side by side in one process."""
