"""mlrun: a declarative runner for Azure Machine Learning labs."""

__version__ = "0.1.0"
