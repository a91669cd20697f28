"""The offline demo: a tiny model, a char-level tokenizer and a synthetic task, all built
locally, so `reasonrl demo` runs the whole R1 / Kimi k1.5 recipe with nothing downloaded."""

from reasonrl.demo.run import DemoSettings, run_demo
from reasonrl.demo.task import AdditionTask
from reasonrl.demo.tokenizer import build_char_tokenizer

__all__ = ["AdditionTask", "DemoSettings", "build_char_tokenizer", "run_demo"]
