"""Only here to ship the top-level profiles/ folder as the package ``fhir_pain.profiles``.

pyproject.toml holds all metadata; setuptools cannot express a find + a remapped folder there.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["cds_hooks*", "fhir_pain*"]) + ["fhir_pain.profiles"],
    package_dir={"fhir_pain.profiles": "profiles"},
)
