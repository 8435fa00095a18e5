"""Packages of the wheel (the rest of the metadata is in pyproject.toml): floodlabel and its subpackages, found
automatically, and floodlabel.resources, which lives at the top level of the repository as resources/ (the app
icon and the bundled sample dataset; package data in pyproject.toml)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["floodlabel", "floodlabel.*"]), "floodlabel.resources"],
      package_dir={"floodlabel.resources": "resources"})
