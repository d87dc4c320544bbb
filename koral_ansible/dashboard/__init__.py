"""The Kubernetes dashboard of a cluster: applied from the bundle's dashboard.yaml
(:mod:`.deploy`), recorded on or off (:mod:`.settings`), reached with a short-lived token
(:mod:`.access`)."""
