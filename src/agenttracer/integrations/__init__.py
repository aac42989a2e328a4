"""Framework integrations: each records what a framework does through the SDK (runs, steps, failures).

* ``agenttracer.integrations.langchain`` — ``AgentTracerCallbackHandler`` for LangChain and LangGraph
  (``pip install 'agenttracer[langchain]'``);
* ``agenttracer.integrations.openai_agents`` — ``AgentTracerProcessor`` for the OpenAI Agents SDK
  (``pip install 'agenttracer[openai-agents]'``);
* ``agenttracer.integrations.otel`` — ``MetadataOnlySpanExporter``, which strips content from
  OpenTelemetry spans before they leave the process (``pip install 'agenttracer[otel]'``).

This package imports nothing on its own: each module imports its framework when it is imported, so
``import agenttracer`` never loads a framework. See docs/integrations.md.
"""
