//! One conversion context for the dump and the events. A netlink message names interfaces
//! by index (route devices, XFRM selectors) and tables by number; turning it into a model
//! value needs their names. The dump and the monitor convert through this same context, so
//! an event about an object the dump showed converts to the same value: a selector named
//! `eth0` by the dump and `if7` by the event would be two policies.

use super::rt_tables::TableNames;
use crate::model::Link;
use crate::model::event::Event;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Context {
    devs: BTreeMap<u32, String>,
    tables: TableNames,
}

impl Context {
    pub fn new(tables: TableNames) -> Context {
        Context {
            devs: BTreeMap::new(),
            tables,
        }
    }

    /// Forget the interfaces known so far and know these (after a dump).
    pub fn set_links(&mut self, links: &[Link]) {
        self.devs = links.iter().map(|l| (l.index, l.name.clone())).collect();
    }

    /// The name of interface `index`, if it is known.
    pub fn dev(&self, index: u32) -> Option<String> {
        self.devs.get(&index).cloned()
    }

    /// A selector's ifindex is signed in the kernel's struct.
    pub fn selector_dev(&self, ifindex: i32) -> Option<String> {
        u32::try_from(ifindex).ok().and_then(|i| self.dev(i))
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Keep up with the interfaces an event creates, renames or removes, so that the
    /// events after it are named as a fresh dump would name them.
    pub fn learn(&mut self, ev: &Event) {
        match ev {
            Event::LinkNew(l) => {
                self.devs.insert(l.index, l.name.clone());
            }
            Event::LinkDel { index } => {
                self.devs.remove(index);
            }
            _ => {}
        }
    }
}
