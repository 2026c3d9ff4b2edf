//! Consent categories and the bitset of granted categories.
//!
//! A policy names its categories (usually `necessary`, `functional`,
//! `analytics`, `advertising`). They are numbered in declaration order, with
//! `necessary` always number 0, so that a visitor's granted set is a single
//! `u64` that is copied, compared and intersected without allocation.

use std::fmt;
use std::time::Duration;

/// The most categories a policy may declare (the width of [`CategorySet`]).
pub const MAX_CATEGORIES: usize = 64;

/// The name of the category that is always granted.
pub const NECESSARY: &str = "necessary";

/// The index of one category inside its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryId(u8);

impl CategoryId {
    /// `necessary`: always category 0, always granted.
    pub const NECESSARY: CategoryId = CategoryId(0);

    /// The id with this index, if it fits in a [`CategorySet`].
    pub fn new(index: usize) -> Option<CategoryId> {
        (index < MAX_CATEGORIES).then_some(CategoryId(index as u8))
    }

    /// The index of this category in its policy's declaration order.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A set of categories, one bit each. `necessary` is bit 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CategorySet(u64);

impl CategorySet {
    /// No category at all (not even `necessary`).
    pub const EMPTY: CategorySet = CategorySet(0);
    /// Only `necessary`: what a visitor without valid consent is granted.
    pub const NECESSARY_ONLY: CategorySet = CategorySet(1);

    /// The set with exactly these bits.
    pub const fn from_bits(bits: u64) -> CategorySet {
        CategorySet(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The set holding one category.
    pub const fn only(id: CategoryId) -> CategorySet {
        CategorySet(1 << id.0)
    }

    /// Whether `id` is in the set.
    pub const fn contains(self, id: CategoryId) -> bool {
        self.0 & (1 << id.0) != 0
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: CategoryId) {
        self.0 |= 1 << id.0;
    }

    /// Removes `id`.
    pub fn remove(&mut self, id: CategoryId) {
        self.0 &= !(1 << id.0);
    }

    /// Categories in either set.
    #[must_use]
    pub const fn union(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 | other.0)
    }

    /// Categories in both sets.
    #[must_use]
    pub const fn intersection(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & other.0)
    }

    /// Categories in `self` but not in `other`.
    #[must_use]
    pub const fn difference(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The categories in the set, in index order.
    pub fn iter(self) -> impl Iterator<Item = CategoryId> {
        let bits = self.0;
        (0..MAX_CATEGORIES as u8).filter(move |i| bits & (1 << i) != 0).map(CategoryId)
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CategorySet({:#b})", self.0)
    }
}

impl FromIterator<CategoryId> for CategorySet {
    fn from_iter<I: IntoIterator<Item = CategoryId>>(iter: I) -> Self {
        let mut set = CategorySet::EMPTY;
        for id in iter {
            set.insert(id);
        }
        set
    }
}

/// One category as the policy declares it.
#[derive(Debug, Clone)]
pub struct Category {
    /// Its name (`analytics`).
    pub name: String,
    /// The text shown to visitors (banner, declaration).
    pub description: String,
    /// Longest lifetime a cookie of this category may have; longer
    /// `Max-Age`/`Expires` are rewritten down to it.
    pub max_cookie_age: Option<Duration>,
}

/// The categories of one policy, in declaration order (`necessary` first).
#[derive(Debug, Clone)]
pub struct Categories {
    list: Vec<Category>,
}

impl Categories {
    /// Builds the table. `list[0]` must be `necessary`; the compiler in
    /// [`crate::policy`] guarantees it, and at most [`MAX_CATEGORIES`].
    pub fn new(list: Vec<Category>) -> Categories {
        debug_assert!(list.first().is_some_and(|c| c.name == NECESSARY));
        debug_assert!(list.len() <= MAX_CATEGORIES);
        Categories { list }
    }

    /// The id of the category with this name.
    pub fn id(&self, name: &str) -> Option<CategoryId> {
        self.list.iter().position(|c| c.name == name).and_then(CategoryId::new)
    }

    /// The category with this id.
    pub fn get(&self, id: CategoryId) -> &Category {
        &self.list[id.index()]
    }

    /// The name of the category with this id.
    pub fn name(&self, id: CategoryId) -> &str {
        &self.list[id.index()].name
    }

    /// Every category with its id, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (CategoryId, &Category)> {
        self.list.iter().enumerate().filter_map(|(i, c)| CategoryId::new(i).map(|id| (id, c)))
    }

    /// The set of every declared category ("accept all").
    pub fn all(&self) -> CategorySet {
        self.iter().map(|(id, _)| id).collect()
    }

    /// The names of the categories in `set`, comma separated
    /// (`necessary,analytics`), as used in headers and logs.
    pub fn names(&self, set: CategorySet) -> String {
        let ids = || set.iter().filter(|id| id.index() < self.list.len());
        // Sized exactly (names and commas): built once per request for the
        // consent header, whose value then takes the buffer as it is.
        let len = ids().map(|id| self.name(id).len() + 1).sum::<usize>().saturating_sub(1);
        let mut out = String::with_capacity(len);
        for id in ids() {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(self.name(id));
        }
        out
    }

    /// Number of categories.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (never true for a compiled policy).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four() -> Categories {
        Categories::new(
            ["necessary", "functional", "analytics", "advertising"]
                .iter()
                .map(|n| Category {
                    name: (*n).to_string(),
                    description: String::new(),
                    max_cookie_age: None,
                })
                .collect(),
        )
    }

    #[test]
    fn set_operations() {
        let cats = four();
        let analytics = cats.id("analytics").unwrap();
        let mut set = CategorySet::NECESSARY_ONLY;
        assert!(set.contains(CategoryId::NECESSARY));
        assert!(!set.contains(analytics));
        set.insert(analytics);
        assert_eq!(cats.names(set), "necessary,analytics");
        assert_eq!(set.difference(CategorySet::NECESSARY_ONLY), CategorySet::only(analytics));
        set.remove(analytics);
        assert_eq!(set, CategorySet::NECESSARY_ONLY);
        assert_eq!(cats.all().bits(), 0b1111);
        assert_eq!(cats.id("nope"), None);
    }

    #[test]
    fn ids_are_bounded() {
        assert!(CategoryId::new(63).is_some());
        assert!(CategoryId::new(64).is_none());
        let high = CategoryId::new(63).unwrap();
        assert!(CategorySet::only(high).contains(high));
        assert_eq!(CategorySet::only(high).iter().collect::<Vec<_>>(), vec![high]);
    }
}
