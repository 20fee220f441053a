//! The review screen (ratatui): pure state and `update()` in [`state`], the vocabulary in
//! [`action`], keys in [`keymap`], drawing in [`view`], pictures in [`graphics`], the loop and its
//! workers in [`app`].

pub mod action;
pub mod app;
pub mod graphics;
pub mod keymap;
pub mod state;
pub mod view;
