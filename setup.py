"""Packaging for iceprod-dag: core in iceprod_dag/, site plugins and the web UI installed under its namespace."""

from setuptools import find_packages, setup

#: top-level folders installed under the iceprod_dag namespace (iceprod_dag.plugins, iceprod_dag.webui, ...)
NAMESPACED = ("plugins", "webui", "config")


def packages() -> list[str]:
    """Every package, found on disk: a new folder with an __init__.py is installed without editing this file."""
    found = find_packages(include=["iceprod_dag", "iceprod_dag.*"])
    for name in NAMESPACED:
        found += [f"iceprod_dag.{name}"] + [f"iceprod_dag.{name}.{sub}" for sub in find_packages(name)]
    return sorted(found)


setup(
    name="iceprod-dag",
    version="0.1.0",
    description="HTCondor-native DAG orchestrator for scientific dataset production",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=packages(),
    package_dir={f"iceprod_dag.{name}": name for name in NAMESPACED},
    package_data={
        "iceprod_dag.config": ["*.yaml", "*.json", "examples/*", "sites/*"],
        "iceprod_dag.webui": ["templates/*", "templates/**/*", "static/*", "static/**/*"],
        "iceprod_dag.stats.migrations": ["*.ini", "*.mako"],
        # every batch plugin's job-script template, whatever its folder
        **{pkg: ["*.tmpl"] for pkg in packages() if pkg.startswith("iceprod_dag.plugins.")},
    },
    install_requires=[
        "htcondor>=25",
        "pyyaml>=6",
        "sqlalchemy>=2",
        "alembic>=1.12",
        "flask>=3",
        "click>=8.1",
        "rich>=13",
        "jsonschema>=4.18",
        "psutil>=5.9",
        "waitress>=3",
        "orjson>=3.8",
    ],
    extras_require={
        "test": [
            "pytest>=8,<9.1",  # schemathesis 4.32 breaks on pytest 9.2 (Function._nodeid)
            "ruff>=0.6",
            "playwright>=1.45",
            "psycopg[binary]>=3.1",
            "schemathesis>=4",  # tests/test_webui_fuzz.py: the API fuzzed from its OpenAPI document
            # scripts/typecheck.sh: mypy and the stubs of the dependencies that do not ship their own types
            "mypy>=1.10",
            "types-PyYAML",
            "types-psutil",
            "types-jsonschema",
            "types-waitress",
        ],
        "web": ["waitress>=3"],
        "postgres": ["psycopg[binary]>=3.1"],
        "bench": ["snakemake>=8"],
    },
    entry_points={
        "console_scripts": ["iceprod-dag=iceprod_dag.cli.main:main"],
        "iceprod_dag.sites": [
            "local=iceprod_dag.plugins.local.site:LocalSite",
            "condor=iceprod_dag.plugins.condor.site:CondorSite",
            "slurm=iceprod_dag.plugins.slurm.site:SlurmSite",
            "sge=iceprod_dag.plugins.sge.site:SgeSite",
            "pbs=iceprod_dag.plugins.pbs.site:PbsSite",
            "lsf=iceprod_dag.plugins.lsf.site:LsfSite",
        ],
    },
)
