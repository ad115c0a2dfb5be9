"""Package layout only (metadata lives in pyproject.toml).

Each top-level folder (protos/ services/ clients/ loadgen/) is an import root of the one
`modipick` namespace; setuptools' find cannot map several roots to one namespace, so map them here.
"""

from setuptools import find_namespace_packages, setup

ROOTS = ("protos", "services", "clients", "loadgen")

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ROOTS:
    for package in find_namespace_packages(root, include=["modipick.*"]):
        packages.append(package)
        package_dir[package] = f"{root}/{package.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
