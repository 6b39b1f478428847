"""Machine learning for agents: causal features, labels, models, purged CV and a model registry.

scikit-learn and XGBoost (the ``ml`` extra) are imported only by the modules that need them
(``models``, ``cv``, ``registry``), so importing this package stays light.
"""
