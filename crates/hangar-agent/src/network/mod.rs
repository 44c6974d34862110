//! Machine networking: the host bridge, per-machine network namespaces, veths and addresses.
