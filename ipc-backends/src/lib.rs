//! The operating-system transports of ipcx.
