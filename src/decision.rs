//! What a stage decided about one item (a cookie, a `Set-Cookie`, a script),
//! collected per request and handed to [`crate::account`] for metrics, the
//! inventory and the audit log.

use std::sync::Arc;

use compact_str::CompactString;

use crate::category::CategoryId;

/// The kind of item decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Item {
    /// A cookie in the request's `Cookie` header.
    RequestCookie,
    /// A `Set-Cookie` header from the origin.
    SetCookie,
    /// A deletion added to the response for a withdrawn cookie.
    Sweep,
    /// `<script src>`.
    Script,
    /// Inline `<script>`.
    InlineScript,
    /// `<iframe src>`.
    Iframe,
    /// `<img>` pixel.
    Image,
    /// `<link rel=preload|prefetch|preconnect|dns-prefetch|modulepreload>`.
    Link,
    /// `<embed>` / `<object>`.
    Embed,
    /// Content of `<noscript>`.
    Noscript,
}

impl Item {
    /// Every kind, in declaration order ([`Item::index`] is the position).
    pub const ALL: [Item; 10] = [
        Item::RequestCookie,
        Item::SetCookie,
        Item::Sweep,
        Item::Script,
        Item::InlineScript,
        Item::Iframe,
        Item::Image,
        Item::Link,
        Item::Embed,
        Item::Noscript,
    ];

    /// Position in [`Item::ALL`], for fixed-size counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Item::RequestCookie => "request_cookie",
            Item::SetCookie => "set_cookie",
            Item::Sweep => "sweep",
            Item::Script => "script",
            Item::InlineScript => "inline_script",
            Item::Iframe => "iframe",
            Item::Image => "img",
            Item::Link => "link",
            Item::Embed => "embed",
            Item::Noscript => "noscript",
        }
    }

    /// Whether the item is a cookie (as opposed to a page resource).
    pub fn is_cookie(self) -> bool {
        matches!(self, Item::RequestCookie | Item::SetCookie | Item::Sweep)
    }
}

/// What was (or, in report-only mode, would have been) done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Action {
    /// Passed unchanged.
    Allow,
    /// Removed (cookie) or neutralised (resource).
    Block,
    /// Kept with its lifetime capped.
    Cap,
    /// Kept with security flags added.
    Harden,
    /// Deleted in the browser.
    Sweep,
    /// Dropped because it did not parse.
    Invalid,
}

impl Action {
    /// Every action, in declaration order ([`Action::index`] is the position).
    pub const ALL: [Action; 6] =
        [Action::Allow, Action::Block, Action::Cap, Action::Harden, Action::Sweep, Action::Invalid];

    /// Position in [`Action::ALL`], for fixed-size counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Block => "block",
            Action::Cap => "cap",
            Action::Harden => "harden",
            Action::Sweep => "sweep",
            Action::Invalid => "invalid",
        }
    }

    /// Whether the item was changed or removed (what `level = "blocked"`
    /// audits).
    pub fn changes(self) -> bool {
        !matches!(self, Action::Allow)
    }
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What kind of item.
    pub item: Item,
    /// Cookie name, or the resource URL (or inline-script signature).
    /// Inline up to 24 bytes, which nearly every cookie name is.
    pub name: CompactString,
    /// Cookie domain (its `Domain`, else the request host) or resource host.
    pub domain: CompactString,
    /// Its category; `None` = unclassified.
    pub category: Option<CategoryId>,
    /// What was done.
    pub action: Action,
    /// The rule (or default) that decided, as [`crate::policy::CookieBasis::describe`] gives it.
    /// Shared: a rule's text is built once, when the policy compiles
    /// ([`crate::policy::CookieBasis::text`]), not per decision.
    pub rule: Arc<str>,
}

/// The decisions of one request, in the order they were made.
pub type Decisions = Vec<Decision>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_positions_in_all() {
        for (i, item) in Item::ALL.iter().enumerate() {
            assert_eq!(item.index(), i);
        }
        for (i, action) in Action::ALL.iter().enumerate() {
            assert_eq!(action.index(), i);
        }
    }
}
