"""Where GitHub users look: Releases (blocks that cross environments) and Deployments (what is deployed where).

``client`` is the one REST client both use; ``releases`` marks blocked releases; ``deployments`` records
deployments, statuses and reads an environment's history back; ``report`` runs them around a run.
"""
