//! Xen interfaces (hypercalls, shared info, event channels, grant table): added by the kernel issue.
