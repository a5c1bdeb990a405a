"""YSQL / PostgreSQL support: catalog reading, DDL writing, dump, load, compare."""
