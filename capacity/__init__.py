"""Capacity: facilities, pools, availability, areas, the database and its migrations."""
