"""placeholder"""
def update_current(path, results, command):
    pass
