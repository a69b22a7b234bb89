"""The code MLflow runs to load a serotiny model ("models from code": nothing pickled)."""

from mlflow.models import set_model

from serotiny_core.pyfunc import ServedRun

set_model(ServedRun())
