"""What the autoregressive family takes when it samples (torch-free: the CLI reads it for its flags)."""

from gentoolkit.registry import SampleOption

TEXT_OPTIONS = (
    SampleOption("prompt", str, "Prompt text (repeatable: a batch). Default: empty.", multiple=True, short="-p",
                 sampler=False),
    SampleOption("max_new_tokens", int, "Tokens to generate (default: stored with the model).", low=1,
                 high=1_000_000, sampler=False),
    SampleOption("greedy", bool, "Always pick the most likely token."),
    SampleOption("temperature", float, "Divide logits by this (0 = greedy).", low=0),
    SampleOption("top_k", int, "Keep the k most likely tokens (0 = off).", low=0),
    SampleOption("top_p", float, "Keep the smallest set of tokens with this much probability.", low=0, high=1,
                 low_open=True),
    SampleOption("min_p", float, "Drop tokens less likely than min-p times the top token.", low=0, high=1),
    SampleOption("repetition_penalty", float, "Penalize tokens already seen (1 = off).", low=0, low_open=True),
    SampleOption("stop", str, "Stop at this string (repeatable; \\n escapes allowed).", multiple=True, sampler=False,
                 escapes=True),
    SampleOption("chat", str, "A user message, through the model's chat template; prints the reply, which ends at "
                 "the end of the turn.", sampler=False),
)
#: the sampler by default, and the option that picks another one
CHOOSE = {"": "sample", "greedy": "greedy"}
FAMILY = "autoregressive"
