pytest_plugins = ["fixtures_redis"]
