"""lark-operator's local development environment: a Kubernetes control plane (etcd +
kube-apiserver, envtest-style) and real PostgreSQL/Redis/RabbitMQ servers on loopback.

Dev-only (hack/devenv, installed editable by `make venv`): used by `lark-operator dev`,
the demo, the benchmark and the tests; never shipped in the lark-operator wheel or image.
"""
