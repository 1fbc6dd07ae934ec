"""Kaggle: fetch the raw CSV files (``make fetch-raw``) and publish the image dataset (``make publish-kaggle``)."""
