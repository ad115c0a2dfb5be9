pytest_plugins = ["fixtures_redis", "fixtures_zoo", "fixtures_suite"]
