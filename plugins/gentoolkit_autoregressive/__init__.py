"""Built-in autoregressive family: GPT- and LLaMA-style transformers."""
