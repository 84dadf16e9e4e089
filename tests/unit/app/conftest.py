"""kopf's login goes through the kube package's loader: its fixtures (certificates, a fake
exec plugin) serve these tests too."""

from tests.unit.kube.conftest import empty_tmpdir, pem, plugin  # noqa: F401 - fixtures
