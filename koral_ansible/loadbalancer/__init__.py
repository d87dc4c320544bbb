"""Services of type LoadBalancer on local clusters: koral plays the cloud, as cloud-provider-kind
does for kind (``services`` reads the API objects, ``rules`` computes the host rules, ``hostnft``
programs them, ``kubeapi`` talks to the cluster, ``reconcile`` ties one pass together and
``loop`` keeps passing)."""
