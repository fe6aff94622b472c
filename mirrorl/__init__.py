"""mirrorl: reinforcement learning for reasoning LLMs after the Kimi k1.5 report (arXiv 2501.12599)."""

__version__ = "0.1.0"
