"""koral-ansible: Kubernetes clusters on Mold/CloudStack or local nodes, through Ansible."""

__version__ = "0.1.0"
