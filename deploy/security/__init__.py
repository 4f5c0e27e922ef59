"""Kafka principals and ACLs of mash-router: one declarative file (``principals.yaml``),
its model (:mod:`deploy.security.principals`) and the command that applies it
(``python -m deploy.security.acls``)."""
