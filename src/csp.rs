//! csp
