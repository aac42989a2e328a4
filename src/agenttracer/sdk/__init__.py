"""The agent-side SDK: instrumentation (``tracer``) and background delivery (``transport``)."""
