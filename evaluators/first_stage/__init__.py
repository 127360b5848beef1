"""First stages: exact search, the ridge mapper, steering vectors (paper §4.2, §6.3, App. E)."""
