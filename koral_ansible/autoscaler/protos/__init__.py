"""cluster-autoscaler's externalgrpc protocol: the .proto and its generated (committed) stubs."""

from koral_ansible.autoscaler import _gen

if _gen.missing():  # a checkout without the generated files: build them once, in place
    _gen.generate()
