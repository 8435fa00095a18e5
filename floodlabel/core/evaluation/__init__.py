"""Scoring models on a dataset: metrics, prompts from ground truth, click simulation and NoC, the
runners (serial, jobs, Ray), the report and the two-model comparison.

May import: every core package below it (common … models, cluster); not store, training.
"""
