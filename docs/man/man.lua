-- SPDX-License-Identifier: BSD-3-Clause
-- pandoc Lua filter: a manual page written in Markdown for people reading it
-- in the sources becomes a man page.  The page starts with one heading
-- "# name(N) — what it does" and has "## SECTION" headings after it; this
-- turns the first heading into the title, the section number and a NAME
-- section ("name \- what it does"), moves every other heading one level up
-- (## to .SH, ### to .SS), and keeps only the text of links to files in the
-- sources (a path relative to a Markdown file means nothing in man).
-- Tables: pandoc's man writer gives relative column widths out of 70 ens,
-- which with tbl's column gaps overflow an 80-column terminal's text width
-- (71 ens after the indent; man warns): they are scaled to 60.  A '|' in
-- code in a table is written '\|' for GitHub's tables; man shows '|'.

local function relative(target)
  return not target:match("^%a[%w+.-]*:") and not target:match("^#")
end

function Link(el)
  if relative(el.target) then
    return el.content
  end
end

function Table(el)
  el = el:walk({
    Code = function(c)
      c.text = c.text:gsub("\\|", "|")
      return c
    end,
  })
  local total = 0
  for _, spec in ipairs(el.colspecs) do
    total = total + (spec[2] or 0)
  end
  if total > 0 then
    for _, spec in ipairs(el.colspecs) do
      if spec[2] then
        spec[2] = spec[2] * 60 / 70
      end
    end
  end
  return el
end

function Pandoc(doc)
  local first = doc.blocks[1]
  if not first or first.t ~= "Header" or first.level ~= 1 then
    error("man.lua: the page must start with '# name(N) — what it does'")
  end
  local text = pandoc.utils.stringify(first.content)
  local name, section, what = text:match("^(%S+)%((%d)%)%s+—%s+(.+)$")
  if not name then
    error("man.lua: the first heading is not 'name(N) — what it does': " .. text)
  end
  doc.meta.title = pandoc.MetaString(name)
  doc.meta.section = pandoc.MetaString(section)
  local blocks = {
    pandoc.Header(1, "NAME"),
    pandoc.Para({pandoc.Str(name), pandoc.Space(), pandoc.RawInline("man", "\\-"),
                 pandoc.Space(), pandoc.Str(what)}),
  }
  for i = 2, #doc.blocks do
    local b = doc.blocks[i]
    if b.t == "Header" then
      if b.level == 1 then
        error("man.lua: a second level-1 heading: " .. pandoc.utils.stringify(b.content))
      end
      b.level = b.level - 1
    end
    blocks[#blocks + 1] = b
  end
  doc.blocks = blocks
  return doc
end
