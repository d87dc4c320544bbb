"""The cluster's network rules for its applications (day 2): firewall, port forwarding, load balancer.

:mod:`.model` is the rule and its limits, :mod:`.validate` turns CLI input into a rule or refuses
(exit 2, nothing changed), :mod:`.reserved` is what koral keeps for itself, :mod:`.cloudstack`
makes the cloud match the recorded rules, :mod:`.ops` is the library API the CLI calls.
"""
