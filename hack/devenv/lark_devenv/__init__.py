"""A local Kubernetes control plane (etcd + kube-apiserver), envtest-style."""
