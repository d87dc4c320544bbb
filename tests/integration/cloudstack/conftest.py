from tests.cloudsim.fixtures import cloudsim  # noqa: F401 - fixture
