"""lark-operator: Feishu / Lark Open Platform apps on Kubernetes."""

__version__ = "0.1.0"
