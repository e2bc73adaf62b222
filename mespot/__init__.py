"""mespot: real-time spotting of facial macro- and micro-expressions with AUW-GCN."""

__version__ = "0.1.0"
