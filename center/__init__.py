"""The district centre (区县政务服务管理办公室): every hall's event log, once, in PostgreSQL, and
one view of the district's halls. It speaks to the halls only through the district broker
(vocabulary.district) and imports nothing of the hall's runtime (tests/test_layers.py)."""
