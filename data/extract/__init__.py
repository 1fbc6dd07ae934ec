"""Extract: the Kaggle CSV files -> one clean, labelled catalogue (``catalogue.parquet``) and a report."""
