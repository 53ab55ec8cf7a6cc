"""The agent: a caller's turn -> a spoken reply (LLM, RAG, tools, memory); a conversation -> its intent.

Public API: ``agent.llm.base.LLM`` + ``agent.llm.registry.create_llm``, ``agent.conversation.Conversation``,
``agent.retrieval.Retriever``, ``agent.tools`` (``ToolBox``, ``CallbackScheduler``, ``CallControl``),
``agent.intent.analyze_intent``, ``agent.memory.MemoryStore``. See docs/CONTRACTS.md.
"""
