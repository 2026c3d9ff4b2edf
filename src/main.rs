//! The `consentry` command.

fn main() {}
