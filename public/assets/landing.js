// The landing page's examples name the origin the page was served from.
for (const node of document.querySelectorAll("[data-origin]")) node.textContent = location.origin;
