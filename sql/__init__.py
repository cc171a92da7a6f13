"""SQL shipped with recharge: versioned migrations and repeatable function files."""
