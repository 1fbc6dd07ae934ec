"""Deployment: ``make export`` (a TF Serving SavedModel, TFLite variants, a model card) and ``make serve``
(an aiohttp service speaking TF Serving's REST API, with dynamic batching and hot version swaps).

    export    runs/<run id>/          -> exports/<model>/<version>/ (saved_model.pb, variables/,
                                         tflite/*.tflite, model_card.json, config.resolved.json)
    serve     exports/<model>/        -> HTTP on 127.0.0.1:8501 (/v1/models/<model>..., /predict, /metrics, /)
"""
