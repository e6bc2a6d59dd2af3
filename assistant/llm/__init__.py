"""The LLM answerer's parts: the model file (gguf_model), the llama.cpp host (local_llm), the prompts,
the constrained reader and its reply parser, and the translation of its faults into one sentence each.

The pipeline sees only ``assistant.answerers.Answerer``; what is verified is the same for both answerers.
"""
