//! Drawing: a pure function of `&App` and `&Live` into a ratatui frame. Only the rows
//! on screen are formatted, so 100k routes cost what 20 do.

use super::app::{App, Mode};
use super::keymap::Action;
use super::rows::{PANES, Pane};
use super::theme::{Item, Theme};
use crate::model::event::Live;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::{Block, Borders, Clear, Widget};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Draw one frame.
///
/// ```text
///  ┌────────────────────────────────────────────────────────────────────────────┐
///  │hopscope │ node │ netns worker │ since 12:00:03 UTC (5m) │ every 1s │ ⚠ 2 rising│ 0 header: where, since, interval, PAUSED, trouble
///  │/dst=10.0 ✓ │ table 200 │ sort DST↑ │ ⚠ rights: CAP_NET_ADMIN missing: XFRM…   │ 1 filter/table/sort, missing rights, warnings
///  │ 1 Links 4 │ 2 Routes 3/9 │ 3 Rules 7 │ 4 SAs 3 │ 5 Policies 5 │ 6 xfrm_stat 4 │ 2 tabs (click to switch)
///  │TABLE  TYPE     DST            GATEWAY     DEV          PREFSRC  PROTO …      │ 3 column headers
///  │main   unicast  default        172.18.0.1  eth0                  boot         │ 4.. rows; the selected one
///  │200 (… unicast  10.0.0.0/24                cilium_host           boot         │     highlighted, rising trouble
///  │ …                                                                            │     counters in the trouble style
///  │                        (detail and help open over the rows)                  │
///  │? help  / filter  : command  enter detail  x SA↔policy  p pause  q quit       │ h-1 keys, or the line being typed,
///  └────────────────────────────────────────────────────────────────────────────┘     or the last answer/notice
/// ```
pub fn draw(f: &mut Frame, app: &App, live: &Live, theme: &Theme) {
    let area = f.area();
    let buf = f.buffer_mut();
    buf.set_style(area, theme.style(Item::Base));
    if area.height < 6 || area.width < 20 {
        buf.set_stringn(
            area.x,
            area.y,
            "hopscope: window too small",
            area.width as usize,
            theme.style(Item::Error),
        );
        return;
    }
    let line = |y: u16| Rect::new(area.x, area.y + y, area.width, 1);
    header(buf, line(0), app, live, theme);
    status(buf, line(1), app, live, theme);
    tabs(buf, line(2), app, live, theme);
    let body = Rect::new(area.x, area.y + 3, area.width, area.height - 4);
    let table_area = stream_head(buf, body, app, theme);
    table(buf, table_area, app, live, theme);
    match app.mode {
        Mode::Help => help(buf, body, app, theme),
        Mode::Detail => detail(buf, body, app, live, theme),
        _ => {}
    }
    footer(buf, line(area.height - 1), app, live, theme);
}

/// Writes spans left to right; returns the x after the last.
fn spans(buf: &mut Buffer, area: Rect, parts: &[(String, Style)]) -> u16 {
    let mut x = area.x;
    let end = area.x + area.width;
    for (text, style) in parts {
        if x >= end {
            break;
        }
        let (nx, _) = buf.set_stringn(x, area.y, text, (end - x) as usize, *style);
        x = nx;
    }
    x
}

fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86400),
    }
}

fn hms_utc(t: SystemTime) -> String {
    let s = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() % 86400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s % 3600 / 60, s % 60)
}

fn interval_label(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn header(buf: &mut Buffer, area: Rect, app: &App, live: &Live, theme: &Theme) {
    let rising = live.rising_trouble();
    let base = if rising > 0 {
        theme.style(Item::HeaderWarn)
    } else {
        theme.style(Item::Header)
    };
    buf.set_style(area, base);
    let host = &live.state.node.hostname;
    // Most important first: a narrow terminal cuts from the right.
    let mut parts = vec![(" hopscope ".to_string(), base)];
    let sep = || (" │ ".to_string(), base);
    parts.push((app.target_label.clone(), base));
    if app.paused {
        parts.push(sep());
        parts.push((" PAUSED ".into(), theme.style(Item::Paused)));
    }
    if rising > 0 {
        parts.push(sep());
        parts.push((format!("⚠ {rising} rising"), base));
    }
    let (fails, warns) = app.health.counts();
    if fails + warns > 0 {
        parts.push(sep());
        parts.push((
            format!("doctor: {fails} fail {warns} warn (9)"),
            theme.style(if fails > 0 {
                Item::Trouble
            } else {
                Item::Warning
            }),
        ));
    }
    let pk = &app.packets;
    let active = pk.streams.iter().filter(|s| s.active()).count();
    if active > 0 {
        parts.push(sep());
        parts.push((
            format!(
                "● capture {active} if{}{}",
                if pk.decrypt { " · decrypt" } else { "" },
                pk.bpf
                    .as_ref()
                    .map(|f| format!(" · {f}"))
                    .unwrap_or_default()
            ),
            base,
        ));
    }
    // Drops and leaks are never hidden, even after the capture stopped.
    let dropped = pk.dropped();
    if dropped > 0 {
        parts.push(sep());
        parts.push((
            format!("{dropped} pkts dropped"),
            theme.style(Item::Warning),
        ));
    }
    let leaks = pk.leaks();
    if leaks > 0 {
        parts.push(sep());
        parts.push((format!("⚠ {leaks} LEAKS"), theme.style(Item::Trouble)));
    }
    parts.push(sep());
    parts.push((format!("every {}", interval_label(app.interval)), base));
    parts.push(sep());
    parts.push((
        format!(
            "since {} ({})",
            hms_utc(app.since),
            ago(app.now.duration_since(app.since).unwrap_or_default())
        ),
        base,
    ));
    if !host.is_empty() {
        parts.push(sep());
        parts.push((format!("node {host}"), base));
    }
    spans(buf, area, &parts);
}

/// Warnings that hide data because a right is missing, or the netns shown is gone.
fn rights_warning(live: &Live) -> Option<&str> {
    live.state
        .warnings
        .iter()
        .chain(live.notices.iter().map(|n| &n.text))
        .find(|w| w.contains("CAP_") || w.contains("missing") || w.starts_with("netns GONE"))
        .map(|s| s.as_str())
}

fn status(buf: &mut Buffer, area: Rect, app: &App, live: &Live, theme: &Theme) {
    let v = app.view();
    let mut parts: Vec<(String, Style)> = Vec::new();
    let sep = (" │ ".to_string(), theme.style(Item::Dim));
    let typing = app.mode == Mode::Filter;
    if !v.filter_text.is_empty() || typing {
        let text = if typing { &app.input } else { &v.filter_text };
        match (&app.input_error, typing) {
            (Some(_), true) => parts.push((format!("/{text} ✗"), theme.style(Item::FilterErr))),
            _ => parts.push((format!("/{text} ✓"), theme.style(Item::FilterOk))),
        }
        parts.push(sep.clone());
    }
    if app.pane == Pane::Routes
        && let Some(t) = app.table
    {
        parts.push((format!("table {t}"), theme.style(Item::FilterOk)));
        parts.push(sep.clone());
    }
    if let Some((c, desc)) = v.sort {
        let h = app.pane.headers();
        parts.push((
            format!(
                "sort {}{}",
                h.get(c).unwrap_or(&"?"),
                if desc { "↓" } else { "↑" }
            ),
            theme.style(Item::Key),
        ));
        parts.push(sep.clone());
    }
    if app.dropped > 0 {
        parts.push((
            format!("{} samples dropped", app.dropped),
            theme.style(Item::Warning),
        ));
        parts.push(sep.clone());
    }
    if live.resyncs > 0 {
        parts.push((
            format!("resynced {}×", live.resyncs),
            theme.style(Item::Warning),
        ));
        parts.push(sep.clone());
    }
    match rights_warning(live) {
        Some(w) if w.starts_with("netns GONE") => {
            parts.push((format!("⚠ {w}"), theme.style(Item::Warning)))
        }
        Some(w) => parts.push((format!("⚠ rights: {w}"), theme.style(Item::Warning))),
        None if !live.state.warnings.is_empty() => parts.push((
            format!(
                "⚠ {} warning(s): {}",
                live.state.warnings.len(),
                live.state.warnings[0]
            ),
            theme.style(Item::Warning),
        )),
        None if parts.is_empty() => {
            parts.push(("all rights present".into(), theme.style(Item::Dim)))
        }
        None => {
            parts.pop();
        }
    }
    spans(buf, area, &parts);
}

fn tabs(buf: &mut Buffer, area: Rect, app: &App, live: &Live, theme: &Theme) {
    // Narrow terminals get short titles and no padding, so all eight tabs fit in 80 columns.
    let narrow = area.width < 120;
    let mut x = area.x;
    let mut hits = Vec::new();
    for (i, p) in PANES.iter().enumerate() {
        let title = match (p, narrow) {
            (Pane::Sas, true) => "SAs",
            (Pane::Policies, true) => "Pol",
            (Pane::Stats, true) => "Stats",
            (Pane::Packets, true) => "Pkts",
            _ => p.title(),
        };
        let total = app.pane_len(*p, live);
        let count = if *p == app.pane && app.view().rows.len() != total {
            format!("{}/{}", app.view().rows.len(), total)
        } else {
            total.to_string()
        };
        // A pane holding an object the doctor finds wrong is marked.
        let mark = if app.health.pane_trouble(*p, &live.state) {
            "!"
        } else {
            ""
        };
        let text = if narrow {
            format!("{} {title}{mark} {count}", i + 1)
        } else {
            format!(" {} {title}{mark} {count} ", i + 1)
        };
        let style = if *p == app.pane {
            theme.style(Item::TabActive)
        } else if !mark.is_empty() {
            theme.style(Item::Trouble)
        } else {
            theme.style(Item::Tab)
        };
        let end = area.x + area.width;
        if x >= end {
            break;
        }
        let (nx, _) = buf.set_stringn(x, area.y, &text, (end - x) as usize, style);
        hits.push((x, nx, *p));
        x = nx;
        if x < end {
            buf.set_stringn(x, area.y, "│", 1, theme.style(Item::Dim));
            x += 1;
        }
    }
    let mut h = app.hits.borrow_mut();
    h.tabs_y = area.y;
    h.tabs = hits;
}

/// Which columns to show and how wide, for `width` cells: first columns that are empty on
/// screen, then columns in the pane's drop order, are hidden (width None) while the rest
/// does not fit; then the widest columns are cut (with …).
pub fn layout_columns(
    drop_order: &[usize],
    natural: &[usize],
    empty: &[bool],
    width: usize,
) -> Vec<Option<usize>> {
    let mut shown: Vec<bool> = vec![true; natural.len()];
    let need = |shown: &[bool]| {
        let cols: Vec<usize> = natural
            .iter()
            .zip(shown)
            .filter(|(_, s)| **s)
            .map(|(w, _)| *w)
            .collect();
        cols.iter().sum::<usize>() + cols.len().saturating_sub(1) * 2
    };
    let order: Vec<usize> = drop_order
        .iter()
        .filter(|&&i| empty.get(i).copied().unwrap_or(false))
        .chain(drop_order.iter())
        .copied()
        .collect();
    for i in order {
        if need(&shown) <= width {
            break;
        }
        if i < shown.len() {
            shown[i] = false;
        }
    }
    let kept: Vec<usize> = natural
        .iter()
        .zip(&shown)
        .filter(|(_, s)| **s)
        .map(|(w, _)| *w)
        .collect();
    let mut fitted = fit_widths(&kept, width).into_iter();
    shown
        .iter()
        .map(|s| if *s { fitted.next() } else { None })
        .collect()
}

/// Fit column widths into `width`: the widest columns give way first.
pub fn fit_widths(natural: &[usize], width: usize) -> Vec<usize> {
    let gaps = natural.len().saturating_sub(1) * 2;
    let avail = width.saturating_sub(gaps);
    if natural.iter().sum::<usize>() <= avail {
        return natural.to_vec();
    }
    // The largest cap c with sum(min(w, c)) <= avail.
    let (mut lo, mut hi) = (1usize, natural.iter().copied().max().unwrap_or(1));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if natural.iter().map(|w| (*w).min(mid)).sum::<usize>() <= avail {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    natural.iter().map(|w| (*w).min(lo)).collect()
}

fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else if w == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(w - 1).collect();
        t.push('…');
        t
    }
}

fn table(buf: &mut Buffer, area: Rect, app: &App, live: &Live, theme: &Theme) {
    app.hits.borrow_mut().table = area;
    let body_rows = area.height.saturating_sub(1) as usize;
    app.page.set(body_rows.max(1));
    if !live.loaded {
        let reading = format!("reading {} …", app.target_label);
        buf.set_stringn(
            area.x,
            area.y + 1,
            reading,
            area.width as usize,
            theme.style(Item::Dim),
        );
        return;
    }
    let off = scroll_to_selection(app, body_rows);
    let v = app.view();
    let shown: Vec<(usize, Vec<String>, bool)> = v.rows[off.min(v.rows.len())..]
        .iter()
        .take(body_rows)
        .map(|&i| {
            (
                i,
                app.row_cells(app.pane, live, i),
                app.row_trouble(app.pane, live, i),
            )
        })
        .collect();
    let widths = column_widths(app, &shown, area.width as usize);
    let put_row = |buf: &mut Buffer, y: u16, cells: &[String], style: Style| {
        let mut x = area.x;
        let end = area.x + area.width;
        for (c, w) in cells.iter().zip(&widths) {
            let Some(w) = w else { continue };
            if x >= end {
                break;
            }
            buf.set_stringn(x, y, clip(c, *w), (end - x) as usize, style);
            x = x.saturating_add(*w as u16 + 2);
        }
    };
    let hs: Vec<String> = app
        .pane
        .headers()
        .iter()
        .enumerate()
        .map(|(i, h)| match v.sort {
            Some((c, d)) if c == i => format!("{h}{}", if d { "↓" } else { "↑" }),
            _ => h.to_string(),
        })
        .collect();
    put_row(buf, area.y, &hs, theme.style(Item::TableHeader));
    if shown.is_empty() {
        let why = why_no_rows(app, live);
        buf.set_stringn(
            area.x,
            area.y + 1,
            why,
            area.width as usize,
            theme.style(Item::Dim),
        );
        return;
    }
    for (n, (_, cells, trouble)) in shown.iter().enumerate() {
        let y = area.y + 1 + n as u16;
        let mut style = if *trouble {
            theme.style(Item::Trouble)
        } else {
            theme.style(Item::Base)
        };
        if off + n == v.selected {
            style = style.patch(theme.style(Item::Selected));
            buf.set_style(Rect::new(area.x, y, area.width, 1), style);
        }
        put_row(buf, y, cells, style);
    }
}

/// The first row shown, moved just enough to keep the selection on screen.
fn scroll_to_selection(app: &App, body_rows: usize) -> usize {
    let v = app.view();
    let mut off = v.offset.get().min(v.rows.len().saturating_sub(1));
    if v.selected < off {
        off = v.selected;
    } else if v.selected >= off + body_rows {
        off = v.selected + 1 - body_rows;
    }
    v.offset.set(off);
    off
}

/// Each column's width for the rows shown (None: dropped for lack of room, or empty).
fn column_widths(
    app: &App,
    shown: &[(usize, Vec<String>, bool)],
    width: usize,
) -> Vec<Option<usize>> {
    let headers = app.pane.headers();
    let mut natural: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for (_, c, _) in shown {
        for (w, s) in natural.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let empty: Vec<bool> = (0..headers.len())
        .map(|c| {
            shown
                .iter()
                .all(|(_, cells, _)| cells.get(c).is_none_or(|s| s.is_empty()))
        })
        .collect();
    layout_columns(app.pane.drop_order(), &natural, &empty, width)
}

/// What an empty table says instead: how to get rows, or that the filter hides them all.
fn why_no_rows(app: &App, live: &Live) -> String {
    if app.pane_len(app.pane, live) != 0 {
        return "no row matches the filter (esc clears it)".to_string();
    }
    match app.pane {
        Pane::Packets => "no packets yet: on the Links pane (1) press c on an interface, or :capture eth0 cilium_host".to_string(),
        Pane::Trace if app.traced.is_some() => "no hop: the path stops before its first (above)".to_string(),
        Pane::Trace => "no flow yet: t on a packet in the Packets pane (7), or :trace SRC DST [--proto tcp --dport 80]".to_string(),
        Pane::Health => "not judged yet: waiting for the node's first reading".to_string(),
        p @ (Pane::Sas | Pane::Policies) if live.state.hidden.iter().any(|h| h.starts_with("xfrm_")) => format!(
            "{} hidden: CAP_NET_ADMIN missing (the kernel shows XFRM state only to it); {}",
            p.title(),
            crate::source::caps::how_to_fix(crate::source::caps::CAP_NET_ADMIN)
        ),
        p => format!("no {} in this netns", p.title()),
    }
}

fn overlay(buf: &mut Buffer, area: Rect, title: &str, theme: &Theme) -> Rect {
    Clear.render(area, buf);
    buf.set_style(area, theme.style(Item::Base));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(Item::Border))
        .title(title.to_string())
        .title_style(theme.style(Item::Title));
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

fn kv_lines(
    buf: &mut Buffer,
    inner: Rect,
    lines: &[(String, String)],
    scroll: usize,
    theme: &Theme,
) {
    let kw = lines
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .min(inner.width as usize / 2);
    for (n, (k, v)) in lines
        .iter()
        .skip(scroll)
        .take(inner.height as usize)
        .enumerate()
    {
        let y = inner.y + n as u16;
        if v.is_empty() {
            buf.set_stringn(
                inner.x,
                y,
                k,
                inner.width as usize,
                theme.style(Item::Title),
            );
            continue;
        }
        buf.set_stringn(inner.x, y, clip(k, kw), kw, theme.style(Item::Key));
        let x = inner.x + kw as u16 + 2;
        if x < inner.x + inner.width {
            buf.set_stringn(
                x,
                y,
                v,
                (inner.x + inner.width - x) as usize,
                theme.style(Item::Base),
            );
        }
    }
}

fn detail(buf: &mut Buffer, area: Rect, app: &App, live: &Live, theme: &Theme) {
    let Some(d) = &app.detail else { return };
    let title = format!(" {} — detail (esc back, ↑↓ scroll) ", d.pane.title());
    let inner = overlay(buf, area, &title, theme);
    match d.index.and_then(|i| app.row_detail(d.pane, live, i)) {
        Some(lines) => {
            kv_lines(
                buf,
                inner,
                &lines,
                d.scroll.min(lines.len().saturating_sub(1)),
                theme,
            );
        }
        None => {
            buf.set_stringn(
                inner.x,
                inner.y,
                match d.pane {
                    Pane::Packets => "this packet is gone (older ones are let go)",
                    Pane::Trace => "this trace is gone",
                    Pane::Health => "this finding is gone (judged again: fixed, or changed)",
                    _ => "this row is gone (the kernel removed it)",
                },
                inner.width as usize,
                theme.style(Item::Warning),
            );
        }
    }
}

/// Every binding of the keymap, then commands, filter syntax and mouse.
pub fn help_lines(app: &App) -> Vec<(String, String)> {
    let mut out = vec![("── keys".to_string(), String::new())];
    for b in &app.keymap.bindings {
        let keys: Vec<String> = b.keys.iter().map(|k| k.to_string()).collect();
        out.push((keys.join(" "), b.help.to_string()));
    }
    out.push(("── commands (:)".into(), String::new()));
    for (c, h) in [
        (":links :routes :rules", "switch pane"),
        (":xfrm :sas :policies :stats", "switch pane"),
        (":table N|NAME|all", "routes of one table (tab completes)"),
        (":netns NAME|PATH", "follow another netns (tab completes)"),
        (":sort COLUMN [desc]", "sort the pane by a column"),
        (":packets :trace :health", "switch pane"),
        (":capture IF [IF…]", "capture on interfaces (tab completes)"),
        (":stop IF…|all", "stop capturing on interfaces"),
        (":bpf EXPR", "capture filter for every stream (empty: none)"),
        (":decrypt [on|off]", "decrypt ESP with the node's SA keys"),
        (
            ":trace SRC DST [--proto P] [--dport N]",
            "predict a flow's hops here and follow it live",
        ),
        (":filter TEXT", "same as /"),
        (":pause  :help  :q", "pause, this help, quit"),
    ] {
        out.push((c.into(), h.into()));
    }
    out.push(("── filter (/)".into(), String::new()));
    for (c, h) in [
        ("word", "rows with a cell containing word (any case)"),
        ("column=word", "that column contains word (column:word too)"),
        ("!word", "rows without word; words combine with AND"),
    ] {
        out.push((c.into(), h.into()));
    }
    out.push(("── mouse".into(), String::new()));
    out.push((
        "wheel / click".into(),
        "scroll / select a row or a tab".into(),
    ));
    out.push(("── marks".into(), String::new()));
    out.push((
        "0x?e00 0x?d00".into(),
        "Cilium encrypt / decrypt (key id in bits 12-15, node id from 1.14)".into(),
    ));
    out
}

fn help(buf: &mut Buffer, area: Rect, app: &App, theme: &Theme) {
    let inner = overlay(buf, area, " help — every key binding (esc back) ", theme);
    let lines = help_lines(app);
    kv_lines(
        buf,
        inner,
        &lines,
        app.help_scroll.min(lines.len().saturating_sub(1)),
        theme,
    );
}

fn footer(buf: &mut Buffer, area: Rect, app: &App, live: &Live, theme: &Theme) {
    let parts = match app.mode {
        Mode::Filter => filter_line(app, area, theme),
        Mode::Bpf => bpf_line(app, area, theme),
        Mode::Command => {
            let mut parts = vec![
                (":".to_string(), theme.style(Item::Key)),
                (typed(app, area), theme.style(Item::Base)),
            ];
            if !app.completions.is_empty() {
                parts.push((
                    format!("  {}", app.completions.join(" ")),
                    theme.style(Item::Dim),
                ));
            }
            parts
        }
        _ => {
            if let Some((m, err)) = &app.message {
                let st = if *err { Item::Error } else { Item::Notice };
                vec![(m.clone(), theme.style(st))]
            } else if let Some(n) = live.notices.back()
                && n.at.elapsed() < Duration::from_secs(15)
            {
                vec![(n.text.clone(), theme.style(Item::Notice))]
            } else {
                key_hints(app, theme)
            }
        }
    };
    spans(buf, area, &parts);
}

/// The filter being typed, and whether it is valid (rows it keeps) or why not.
fn filter_line(app: &App, area: Rect, theme: &Theme) -> Vec<(String, Style)> {
    let ok = format!(
        "  ✓ {} rows  (enter keep, esc cancel)",
        app.view().rows.len()
    );
    typed_line(app, area, theme, "/", ok)
}

/// The capture filter being typed, and what libpcap says of it.
fn bpf_line(app: &App, area: Rect, theme: &Theme) -> Vec<(String, Style)> {
    let ok = if app.input.trim().is_empty() {
        "  ✓ no filter  (enter apply, esc cancel)"
    } else {
        "  ✓ libpcap compiles it  (enter apply, esc cancel)"
    };
    typed_line(app, area, theme, "capture filter (BPF): ", ok.to_string())
}

/// A line being typed after `prompt`, then its verdict: why not, still being checked, or `ok`.
fn typed_line(
    app: &App,
    area: Rect,
    theme: &Theme,
    prompt: &str,
    ok: String,
) -> Vec<(String, Style)> {
    let verdict = match &app.input_error {
        Some(e) => (format!("  ✗ {e}"), theme.style(Item::FilterErr)),
        None if app.bpf_checking => (
            "  … libpcap is checking it  (enter apply, esc cancel)".into(),
            theme.style(Item::Dim),
        ),
        None => (ok, theme.style(Item::FilterOk)),
    };
    vec![
        (prompt.to_string(), theme.style(Item::Key)),
        (typed(app, area), theme.style(Item::Base)),
        verdict,
    ]
}

/// The keys of what can be done on the pane shown.
fn key_hints(app: &App, theme: &Theme) -> Vec<(String, Style)> {
    let pause = if app.paused { "resume" } else { "pause" };
    let decrypt = if app.packets.decrypt {
        "decrypt off"
    } else {
        "decrypt"
    };
    let hints: &[(Action, &str)] = match app.pane {
        Pane::Links => &[
            (Action::Help, "help"),
            (Action::Filter, "filter"),
            (Action::Command, "cmd"),
            (Action::Detail, "detail"),
            (Action::Capture, "capture"),
            (Action::SortNext, "sort"),
            (Action::Pause, pause),
            (Action::Quit, "quit"),
        ],
        Pane::Packets => &[
            (Action::Help, "help"),
            (Action::Filter, "filter"),
            (Action::Bpf, "bpf"),
            (Action::Decrypt, decrypt),
            (Action::Follow, "trace flow"),
            (Action::Capture, "stop if"),
            (Action::Detail, "detail"),
            (Action::Pause, pause),
            (Action::Quit, "quit"),
        ],
        _ => &[
            (Action::Help, "help"),
            (Action::Filter, "filter"),
            (Action::Command, "cmd"),
            (Action::Detail, "detail"),
            (Action::SortNext, "sort"),
            (Action::Jump, "SA↔policy"),
            (Action::Pause, pause),
            (Action::Quit, "quit"),
        ],
    };
    hints
        .iter()
        .flat_map(|&(a, what)| {
            [
                (app.keymap.first_key(a), theme.style(Item::Key)),
                (format!(" {what}  "), theme.style(Item::Dim)),
            ]
        })
        .collect()
}

/// The Packets pane's streams (one line each) or the Trace pane's summary above the rows;
/// returns the area left for the table.
fn stream_head(buf: &mut Buffer, body: Rect, app: &App, theme: &Theme) -> Rect {
    let lines: Vec<(String, Style)> = match app.pane {
        Pane::Packets => {
            let pk = &app.packets;
            let mut l: Vec<(String, Style)> = pk
                .streams
                .iter()
                .map(|s| {
                    let st = if s.counts.leaks > 0 || s.gone.is_some() {
                        Item::Trouble
                    } else if s.dropped() > 0 {
                        Item::Warning
                    } else {
                        Item::Notice
                    };
                    (super::packets::stream_line(s), theme.style(st))
                })
                .collect();
            let max = (body.height as usize / 3).max(1);
            if l.len() > max {
                let more = l.len() - max + 1;
                l.truncate(max - 1);
                l.push((
                    format!("… and {more} more interfaces"),
                    theme.style(Item::Dim),
                ));
            }
            if pk.evicted() > 0 || pk.missed_paused > 0 {
                l.push((
                    format!(
                        "{} older packets let go (newest {} kept){}",
                        pk.evicted(),
                        super::packets::KEEP,
                        if pk.missed_paused > 0 {
                            format!(
                                "; {} arrived while paused (counted, not listed)",
                                pk.missed_paused
                            )
                        } else {
                            String::new()
                        }
                    ),
                    theme.style(Item::Dim),
                ));
            }
            l
        }
        Pane::Trace => match &app.traced {
            Some(t) => t
                .summary()
                .into_iter()
                .enumerate()
                .map(|(i, (line, trouble))| {
                    let st = match (i, trouble) {
                        (_, true) => Item::Trouble,
                        (0, _) => Item::Title,
                        _ => Item::Notice,
                    };
                    (line, theme.style(st))
                })
                .collect(),
            None => vec![],
        },
        // The verdict. What a judgement costs is measured by benches/doctor, not shown: a
        // wall-clock figure would make every frame of this pane differ from the last.
        Pane::Health => match &app.health.report {
            Some(r) => vec![(
                format!("{}  (enter: to the object)", r.verdict),
                theme.style(match r.worst {
                    crate::doctor::Severity::Fail => Item::Trouble,
                    crate::doctor::Severity::Warn => Item::Warning,
                    _ => Item::Title,
                }),
            )],
            None => vec![],
        },
        _ => vec![],
    };
    let n = (lines.len() as u16).min(body.height.saturating_sub(2));
    for (i, (text, style)) in lines.iter().take(n as usize).enumerate() {
        buf.set_stringn(body.x, body.y + i as u16, text, body.width as usize, *style);
    }
    Rect::new(body.x, body.y + n, body.width, body.height - n)
}

/// The line being typed (filter, capture filter, command) with its cursor. A long line shows
/// its end, where the typing is, in half the footer at most: the verdict beside it must stay
/// visible. (Shown from its start, a line longer than the terminal hid the keys typed and the
/// refusal of Enter, and the TUI looked as if it took no more input.)
fn typed(app: &App, area: Rect) -> String {
    format!("{}▏", tail(&app.input, usize::from(area.width) / 2))
}

/// The last `max` characters of `text`, marked with "…" when cut.
fn tail(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let skip = n - max.saturating_sub(1);
    std::iter::once('…')
        .chain(text.chars().skip(skip))
        .collect()
}
