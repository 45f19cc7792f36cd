"""multilabel"""
