//! The listener tables: handlers by key, each list in registration order, and the cell that
//! lets a handler add or cancel listeners while its table dispatches.

use std::cell::RefCell;

use rustc_hash::FxHashMap;

use super::handler::Handler;
use super::Key;

type HandlerList<C> = Vec<(u64, Handler<C>)>;

/// Handlers by key, each list in registration order. Text and binary lists are fields, so
/// the common lookups cost nothing; PackMe ids (already hashes) go through FxHash.
pub(crate) struct HandlerTable<C> {
    text: HandlerList<C>,
    binary: HandlerList<C>,
    messages: FxHashMap<u32, HandlerList<C>>,
}

impl<C> Default for HandlerTable<C> {
    fn default() -> Self {
        Self {
            text: Vec::new(),
            binary: Vec::new(),
            messages: FxHashMap::default(),
        }
    }
}

impl<C> Clone for HandlerTable<C> {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            binary: self.binary.clone(),
            messages: self.messages.clone(),
        }
    }
}

impl<C> HandlerTable<C> {
    fn list_mut(&mut self, key: Key) -> &mut HandlerList<C> {
        match key {
            Key::Text => &mut self.text,
            Key::Binary => &mut self.binary,
            Key::Message(id) => self.messages.entry(id).or_default(),
        }
    }

    pub(crate) fn add(&mut self, key: Key, id: u64, handler: Handler<C>) {
        self.list_mut(key).push((id, handler));
    }

    pub(crate) fn remove(&mut self, key: Key, id: u64) -> bool {
        let list = self.list_mut(key);
        let before = list.len();
        list.retain(|(existing, _)| *existing != id);
        let removed = list.len() != before;
        if let Key::Message(message) = key {
            if self.messages.get(&message).is_some_and(Vec::is_empty) {
                self.messages.remove(&message);
            }
        }
        removed
    }

    pub(super) fn get(&self, key: Key) -> &[(u64, Handler<C>)] {
        match key {
            Key::Text => &self.text,
            Key::Binary => &self.binary,
            // Most servers listen for no PackMe type: no hashing then.
            Key::Message(_) if self.messages.is_empty() => &[],
            Key::Message(id) => self.messages.get(&id).map(Vec::as_slice).unwrap_or(&[]),
        }
    }

    pub(super) fn has(&self, key: Key) -> bool {
        !self.get(key).is_empty()
    }

    pub(super) fn all_borrow(&self, key: Key) -> bool {
        self.get(key).iter().all(|(_, handler)| handler.borrows)
    }
}

type Deferred<C> = Box<dyn FnOnce(&mut HandlerTable<C>)>;

/// A listener table that handlers can change while it dispatches.
pub(crate) struct ListenerCell<C> {
    pub(super) table: RefCell<HandlerTable<C>>,
    deferred: RefCell<Vec<Deferred<C>>>,
}

impl<C> Default for ListenerCell<C> {
    fn default() -> Self {
        Self {
            table: RefCell::default(),
            deferred: RefCell::default(),
        }
    }
}

impl<C> ListenerCell<C> {
    pub(crate) fn with_table(table: HandlerTable<C>) -> Self {
        Self {
            table: RefCell::new(table),
            deferred: RefCell::default(),
        }
    }

    /// Applies `change` now, or right after the dispatch in progress.
    pub(crate) fn apply(&self, change: impl FnOnce(&mut HandlerTable<C>) + 'static) {
        match self.table.try_borrow_mut() {
            Ok(mut table) => change(&mut table),
            Err(_) => self.deferred.borrow_mut().push(Box::new(change)),
        }
    }

    #[inline]
    pub(super) fn apply_deferred(&self) {
        // The common case, checked without building and dropping an empty batch.
        if self.deferred.borrow().is_empty() {
            return;
        }
        self.apply_deferred_now();
    }

    #[cold]
    #[inline(never)]
    fn apply_deferred_now(&self) {
        loop {
            let pending = std::mem::take(&mut *self.deferred.borrow_mut());
            if pending.is_empty() {
                return;
            }
            let mut table = self.table.borrow_mut();
            for change in pending {
                change(&mut table);
            }
        }
    }
}
