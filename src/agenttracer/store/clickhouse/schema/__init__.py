"""The ClickHouse schema: versioned migrations (``migrations/v<NNNN>_<name>.py``) and their runner."""
