"""LLM backends behind one ``LLM`` protocol; pick one with ``agent.llm.registry.create_llm``."""
